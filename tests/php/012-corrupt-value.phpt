--TEST--
A corrupt or foreign stored value gives a warning and an empty session, and is kept until the application writes
--INI--
error_reporting=-1
session.lazy_write=0
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
redis('SET', data_key(TEST_SID), 'counter|i:5;');
session_id(TEST_SID);
var_dump(session_start(), $_SESSION);
session_write_close();
var_dump(redis('GET', data_key(TEST_SID)));

session_id(TEST_SID);
session_start();
$_SESSION['fresh'] = 1;
session_write_close();
session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION);
?>
--EXPECTF--
Warning: stickless: session {%x} holds an unreadable value (the value was not written by stickless); starting empty, the stored value is kept until the application writes in %s on line %d
bool(true)
array(0) {
}
string(12) "counter|i:5;"

Warning: stickless: session {%x} holds an unreadable value (the value was not written by stickless); starting empty, the stored value is kept until the application writes in %s on line %d
array(1) {
  ["fresh"]=>
  int(1)
}
