--TEST--
A session over max_size is refused with a warning and the stored data is left as it was
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('max_size=1000');
session_id(TEST_SID);
session_start();
$_SESSION['small'] = 'ok';
session_write_close();
$before = redis('GET', data_key(TEST_SID));

session_id(TEST_SID);
session_start();
$_SESSION['big'] = str_repeat('x', 2000);
var_dump(session_write_close());
var_dump(redis('GET', data_key(TEST_SID)) === $before, redis('EXISTS', lock_key(TEST_SID)));
?>
--EXPECTF--
Warning: stickless: session {%x} is %d bytes, over max_size 1000; the write was refused in %s on line %d

Warning: session_write_close(): Failed to write session data (stickless). Please verify that the current setting of session.save_path is correct (%s) in %s on line %d
bool(true)
bool(true)
int(0)
