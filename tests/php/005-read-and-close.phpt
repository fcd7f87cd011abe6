--TEST--
read_and_close returns the data and leaves no lock behind
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('lock_wait_ms=0');
session_id(TEST_SID);
session_start();
$_SESSION['x'] = 'y';
session_write_close();
session_id(TEST_SID);
var_dump(session_start(['read_and_close' => true]), $_SESSION['x'], session_status() === PHP_SESSION_NONE);
var_dump(redis('EXISTS', lock_key(TEST_SID)));
// lock_wait_ms=0: this would fail at once if a lock were left.
session_id(TEST_SID);
var_dump(session_start());
session_write_close();
?>
--EXPECT--
bool(true)
string(1) "y"
bool(true)
int(0)
bool(true)
