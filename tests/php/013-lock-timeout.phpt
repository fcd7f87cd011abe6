--TEST--
A lock held elsewhere: session_start() fails after lock_wait_ms, or opens read-only and refuses the write
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_id(TEST_SID);
session_start();
$_SESSION['v'] = 'original';
session_write_close();

// Another "request" takes the lock and keeps it until we close its stdin... it
// signals through stdout once it holds the lock.
$child = spawn_php('use_stickless(); session_id(TEST_SID); session_start(); ob_end_clean(); echo "locked\n"; usleep(1500000);', $pipes);
var_dump(trim(fgets($pipes[1])));

ini_set('session.save_path', test_url('lock_wait_ms=100'));
session_id(TEST_SID);
$t = microtime(true);
var_dump(session_start());
$ms = (microtime(true) - $t) * 1000;
var_dump($ms >= 100 && $ms < 1000);

ini_set('session.save_path', test_url('lock_wait_ms=100&on_lock_timeout=readonly'));
session_id(TEST_SID);
var_dump(session_start(), $_SESSION['v']);
$_SESSION['v'] = 'changed';
var_dump(session_write_close());
proc_close($child);
session_id(TEST_SID);
ini_set('session.save_path', test_url());
session_start(['read_and_close' => true]);
var_dump($_SESSION['v']);
?>
--EXPECTF--
string(6) "locked"

Warning: stickless: session {%x} is locked by another request; gave up after %d ms (lock_wait_ms) in %s on line %d

Warning: session_start(): Failed to read session data: stickless (path: %s) in %s on line %d
bool(false)
bool(true)

Warning: stickless: session {%x} is locked by another request; opened read-only after %d ms (on_lock_timeout=readonly), changes will not be saved in %s on line %d
bool(true)
string(8) "original"

Warning: stickless: session {%x} was opened read-only after a lock timeout; the write was refused in %s on line %d

Warning: session_write_close(): Failed to write session data (stickless). Please verify that the current setting of session.save_path is correct (%s) in %s on line %d
bool(true)
string(8) "original"
