--TEST--
A malformed save_path or option gives a warning that names the bad part
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
foreach (['memcached://h', 'redis://127.0.0.1:6390/x', 'redis://127.0.0.1?lock_wait_ms=soon', 'redis://127.0.0.1?colour=blue'] as $path) {
    ini_set('session.save_path', $path);
    var_dump(session_start());
}
ini_set('stickless.on_lock_timeout', 'maybe');
ini_set('session.save_path', test_url());
var_dump(session_start());
ini_set('stickless.on_lock_timeout', 'fail');
try {
    new Stickless\SessionHandler('redis://127.0.0.1', ['max_size' => 'huge']);
} catch (Exception $e) {
    echo $e->getMessage(), "\n";
}
?>
--EXPECTF--
Warning: stickless: session.save_path: save_path scheme `memcached` is not supported; use redis://, rediss://, redis+cluster://, redis+sentinel:// (each also as rediss+...) or unix:///path/to/redis.sock in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: memcached://h) in %s on line %d
bool(false)

Warning: stickless: session.save_path: save_path database is invalid: `x` is not a database number in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: redis://127.0.0.1:6390/x) in %s on line %d
bool(false)

Warning: stickless: session.save_path: option `lock_wait_ms` has invalid value `soon`: expected whole milliseconds in range in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: redis://127.0.0.1?lock_wait_ms=soon) in %s on line %d
bool(false)

Warning: stickless: session.save_path: unknown option `colour`; see docs/CONFIGURATION.md for the list in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: redis://127.0.0.1?colour=blue) in %s on line %d
bool(false)

Warning: stickless: session.save_path: ini: option `on_lock_timeout` has invalid value `maybe`: expected `fail` or `readonly` in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: %s) in %s on line %d
bool(false)
stickless: option `max_size` has invalid value `huge`: expected bytes from 1 to 536870912
