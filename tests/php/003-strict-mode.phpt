--TEST--
Strict mode: an unknown ID is never adopted; a known one is kept
--INI--
error_reporting=-1
session.use_strict_mode=1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_id('attackerchosenid0123456789');
var_dump(session_start());
$fresh = session_id();
var_dump($fresh !== 'attackerchosenid0123456789');
$_SESSION['who'] = 'ann';
session_write_close();
var_dump(redis('EXISTS', data_key('attackerchosenid0123456789')));

session_id($fresh);
session_start();
var_dump(session_id() === $fresh, $_SESSION['who']);
session_write_close();
?>
--EXPECT--
bool(true)
bool(true)
int(0)
bool(true)
string(3) "ann"
