--TEST--
lazy_write: unchanged data is only touched (its lifetime renewed), changed data is written
--INI--
error_reporting=-1
session.lazy_write=1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_id(TEST_SID);
session_start();
$_SESSION['a'] = 1;
session_write_close();
$before = redis('GET', data_key(TEST_SID));
redis('PEXPIRE', data_key(TEST_SID), '60000');

session_id(TEST_SID);
session_start();
session_write_close();
var_dump(redis('GET', data_key(TEST_SID)) === $before, redis('PTTL', data_key(TEST_SID)) > 60000);
var_dump(redis('EXISTS', lock_key(TEST_SID)));

session_id(TEST_SID);
session_start();
$_SESSION['a'] = 2;
session_write_close();
var_dump(redis('GET', data_key(TEST_SID)) === $before);
session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION['a']);
?>
--EXPECT--
bool(true)
bool(true)
int(0)
bool(false)
int(2)
