--TEST--
session_regenerate_id(true) moves the data to a new ID and deletes the old; session_destroy deletes the session
--INI--
error_reporting=-1
session.use_strict_mode=1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_start();
$old = session_id();
$_SESSION['cart'] = [1, 2];
session_write_close();

session_id($old);
session_start();
var_dump(session_regenerate_id(true));
$new = session_id();
var_dump($new !== $old);
session_write_close();
var_dump(redis('EXISTS', data_key($old)), redis('EXISTS', data_key($new)));
var_dump(redis('KEYS', test_prefix() . '*:lock'));

session_id($new);
session_start();
var_dump($_SESSION['cart']);
var_dump(session_destroy());
var_dump(redis('EXISTS', data_key($new)), redis('EXISTS', lock_key($new)));
?>
--EXPECT--
bool(true)
bool(true)
int(0)
int(1)
array(0) {
}
array(2) {
  [0]=>
  int(1)
  [1]=>
  int(2)
}
bool(true)
int(0)
int(0)
