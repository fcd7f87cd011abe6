--TEST--
New session IDs honour session.sid_length and session.sid_bits_per_character, and always carry 128 bits
--INI--
error_reporting=-1
session.sid_length=48
session.sid_bits_per_character=6
--SKIPIF--
<?php
if (PHP_VERSION_ID >= 80400) die('skip sets session.sid_length and session.sid_bits_per_character, deprecated as of PHP 8.4 (029 covers the defaults)');
try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); }
?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_start();
$id = session_id();
var_dump(strlen($id), preg_match('/^[0-9a-zA-Z,-]+$/', $id));
$_SESSION['x'] = 1;
session_write_close();
var_dump(redis('EXISTS', data_key($id)));
$h = new Stickless\SessionHandler(test_url());
var_dump(strlen($h->create_sid()));
// 22 characters of 4 bits would be 88 bits: lengthened to 32 (128 bits).
ini_set('session.sid_length', '22');
ini_set('session.sid_bits_per_character', '4');
$id = $h->create_sid();
var_dump(strlen($id), preg_match('/^[0-9a-f]+$/', $id));
?>
--EXPECT--
int(48)
int(1)
int(1)
int(48)
int(32)
int(1)
