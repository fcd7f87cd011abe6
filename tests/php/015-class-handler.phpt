--TEST--
Stickless\SessionHandler serves session_set_save_handler() with the same URL and options
--INI--
error_reporting=-1
session.use_strict_mode=1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
ini_set('session.save_handler', 'files'); // the object, not the native handler, must do the work
$handler = new Stickless\SessionHandler(test_url(), ['lock_wait_ms' => 100]);
var_dump(session_set_save_handler($handler, true));
var_dump(session_start());
$id = session_id();
$_SESSION['user'] = 'ann';
session_write_close();
var_dump(redis('EXISTS', data_key($id)), redis('EXISTS', lock_key($id)));

session_id($id);
session_start();
var_dump($_SESSION['user']);
var_dump(session_regenerate_id(true));
$new = session_id();
session_write_close();
var_dump(redis('EXISTS', data_key($id)), redis('EXISTS', data_key($new)));

session_id($new);
session_start();
var_dump($_SESSION['user'], session_destroy(), redis('EXISTS', data_key($new)));
var_dump($handler->gc(1440));
// A handler object per request, as frameworks make them: each set of
// options has its own configuration, however often the objects are made.
foreach (['obj-a:', 'obj-b:', 'obj-a:'] as $prefix) {
    $h = new Stickless\SessionHandler(test_url(), ['prefix' => $prefix]);
    $h->open('', 'PHPSESSID');
    $sid = $h->create_sid();
    $h->read($sid);
    $h->write($sid, "p|s:6:\"$prefix\";");
    $h->close();
    $tag = substr(hash('sha256', "stickless/session-key/v1\0" . $sid), 0, 32);
    var_dump(redis('GET', "{$prefix}{{$tag}}:data") !== null);
    redis('DEL', "{$prefix}{{$tag}}:data");
}
try {
    new Stickless\SessionHandler('bogus://x');
} catch (Exception $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
?>
--EXPECT--
bool(true)
bool(true)
int(1)
int(0)
string(3) "ann"
bool(true)
int(0)
int(1)
string(3) "ann"
bool(true)
int(0)
int(0)
bool(true)
bool(true)
bool(true)
Exception: stickless: save_path scheme `bogus` is not supported; use redis://, rediss://, redis+cluster://, redis+sentinel:// (each also as rediss+...) or unix:///path/to/redis.sock
