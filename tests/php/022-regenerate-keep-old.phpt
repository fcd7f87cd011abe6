--TEST--
session_regenerate_id(false) keeps the old session and copies the data to the new ID, leaving no lock behind
--INI--
error_reporting=-1
session.use_strict_mode=1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('lock_wait_ms=0');
session_start();
$old = session_id();
$_SESSION['v'] = 'kept';
var_dump(session_regenerate_id(false));
$new = session_id();
$_SESSION['v2'] = 'new only';
session_write_close();
var_dump($old !== $new, redis('KEYS', test_prefix() . '*:lock'));

session_id($old);
session_start(['read_and_close' => true]);
var_dump($_SESSION);
session_id($new);
session_start();
var_dump($_SESSION);
session_write_close();
?>
--EXPECT--
bool(true)
bool(true)
array(0) {
}
array(1) {
  ["v"]=>
  string(4) "kept"
}
array(2) {
  ["v"]=>
  string(4) "kept"
  ["v2"]=>
  string(8) "new only"
}
