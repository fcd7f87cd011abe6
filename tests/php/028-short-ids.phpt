--TEST--
Session IDs as PHP's files handler accepts them: an application's short session_id('abc') works with strict mode off, and strict mode replaces an unknown short ID instead of failing
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('strict_mode=0');
session_id('abc');
var_dump(session_start());
$_SESSION['n'] = 1;
session_write_close();
session_id('abc');
session_start();
var_dump(session_id(), $_SESSION['n']);
session_write_close();
redis('DEL', data_key('abc'));

use_stickless('strict_mode=1');
session_id('xyz');
var_dump(session_start(), session_id() !== 'xyz', strlen(session_id()) >= 22);
session_write_close();
?>
--EXPECT--
bool(true)
string(3) "abc"
int(1)
bool(true)
bool(true)
bool(true)
