--TEST--
Sessions per user: bind_user(), user_sessions() and logout_user() refuse bad arguments with a ValueError and a missing session with an Exception, and never show a session ID
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
function attempt(callable $f): void {
    try {
        $f();
        echo "no error\n";
    } catch (Throwable $e) {
        echo get_class($e), ': ', $e->getMessage(), "\n";
    }
}
// Before any session: nothing to bind.
attempt(fn () => Stickless\bind_user('ann'));
attempt(fn () => Stickless\bind_user(''));
attempt(fn () => Stickless\bind_user(str_repeat('u', 513)));
attempt(fn () => Stickless\bind_user([]));
attempt(fn () => Stickless\user_sessions(''));
attempt(fn () => Stickless\logout_user('ann', 'not a session id!'));

session_id(TEST_SID);
session_start();
attempt(fn () => Stickless\bind_user('ann', str_repeat('l', 257)));
attempt(fn () => Stickless\bind_user(42, 'laptop'));
$listed = Stickless\user_sessions(42);
var_dump(count($listed), $listed[0]['label'], $listed[0]['current']);
var_dump(str_contains(json_encode($listed), TEST_SID));
session_write_close();
// After the session is closed: not bound any more, and still listed.
attempt(fn () => Stickless\bind_user(42));
var_dump(count(Stickless\user_sessions('42')));
var_dump(Stickless\logout_user(42, TEST_SID), Stickless\logout_user(42));
var_dump(Stickless\user_sessions(42));
?>
--EXPECT--
Exception: stickless: no active stickless session; call session_start() first
ValueError: stickless: user ID is empty
ValueError: stickless: user ID has 513 bytes; at most 512 are accepted
TypeError: stickless: the user ID must be a string or an int
ValueError: stickless: user ID is empty
ValueError: stickless: session ID has a character outside 0-9a-zA-Z,- at position 3
ValueError: stickless: session label has 257 bytes; at most 256 are accepted
no error
int(1)
string(6) "laptop"
bool(true)
bool(false)
Exception: stickless: the session is not locked by this request (closed, read_and_close or read-only); it cannot be bound
int(1)
int(0)
int(1)
array(0) {
}
