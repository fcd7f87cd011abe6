--TEST--
Redis down: session_start() returns false with a warning naming the server, the cause and the time taken
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
ini_set('session.save_path', 'redis://127.0.0.1:1/0?connect_timeout_ms=200');
session_id(TEST_SID);
$t = microtime(true);
var_dump(session_start());
var_dump(microtime(true) - $t < 1.0);
?>
--EXPECTF--
Warning: stickless: redis://127.0.0.1:1/0: %s (after %d ms) in %s on line %d

Warning: session_start(): Failed to read session data: stickless (path: redis://127.0.0.1:1/0?connect_timeout_ms=200) in %s on line %d
bool(false)
bool(true)
