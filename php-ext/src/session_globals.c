/* The session module's state that the save handler must touch and ext-php-rs
 * does not bind, and the one way of raising a warning it needs. The layout of
 * php_ps_globals differs between PHP versions (and ZTS builds reach it through
 * TSRM), so it is reached here, through the headers of the very PHP this
 * extension is built against. */
#include "php.h"
#include "ext/session/php_session.h"

/* Strict mode for the session being started, without going through the ini
 * system: a run-time change of a session.* setting is refused while a session
 * is active (session.auto_start) and is a fatal error while
 * session.upload_progress.enabled is on (upstream's default). The session
 * module reads this flag right after the handler's open, which is where
 * stickless calls this. */
void stickless_ps_set_strict_mode(bool on)
{
	PS(use_strict_mode) = on;
}

/* Whether the application changed session.use_strict_mode during this
 * request (ini_set(), or a session_start() option): an explicit choice that
 * stickless's default must not override. php.ini's value is no such choice:
 * php.ini-production ships it off. */
bool stickless_strict_mode_set_at_runtime(void)
{
	zend_ini_entry *entry = zend_hash_str_find_ptr(
		EG(ini_directives), "session.use_strict_mode", sizeof("session.use_strict_mode") - 1);
	return entry != NULL && entry->modified;
}

/* Whether PHP's session module is running a session now: from the start of
 * session_start() until the session is written or closed. A
 * Stickless\SessionHandler object that a framework calls from its own session
 * code (Laravel) is called outside of one, with data in the framework's
 * layout rather than session.serialize_handler's. */
bool stickless_ps_active(void)
{
	return PS(session_status) == php_session_active;
}

/* Raises an E_WARNING whose text is `message` alone. php_error_docref() would
 * put the running function in front ("session_write_close(): "), and
 * Symfony's NativeSessionStorage::save() replaces the text of every warning
 * that starts so with its own "Failed to write session data with ... handler":
 * the cause stickless names (a conflict, a lost lock, Redis down) never
 * reached the log. The file and line PHP adds still say where. */
void stickless_warning(const char *message)
{
	zend_error(E_WARNING, "%s", message);
}
