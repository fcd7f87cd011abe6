--TEST--
session_abort discards changes and releases the lock; session_reset restores the stored values
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('lock_wait_ms=0');
session_id(TEST_SID);
session_start();
$_SESSION['v'] = 'stored';
session_write_close();

session_id(TEST_SID);
session_start();
$_SESSION['v'] = 'changed';
var_dump(session_reset(), $_SESSION['v']);
$_SESSION['v'] = 'changed again';
var_dump(session_abort());
var_dump(redis('EXISTS', lock_key(TEST_SID)));

session_id(TEST_SID);
session_start();
var_dump($_SESSION['v']);
session_write_close();
?>
--EXPECT--
bool(true)
string(6) "stored"
bool(true)
int(0)
string(6) "stored"
