--TEST--
concurrency=merge: a handler object called outside PHP's session module (as Laravel calls it) takes the lock
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
$handler = new Stickless\SessionHandler(test_url('concurrency=merge&strict_mode=0'), ['lock_wait_ms' => 100]);

// Called by a framework of its own: the data is the framework's layout,
// whatever session.serialize_handler says, so it is not merged but locked.
$handler->open('', 'PHPSESSID');
var_dump($handler->read(TEST_SID));
var_dump(redis('EXISTS', lock_key(TEST_SID)));
var_dump($handler->write(TEST_SID, 'a:1:{s:6:"_token";s:3:"x|N;";}'));
$handler->close();
var_dump(redis('EXISTS', lock_key(TEST_SID)));
redis('DEL', data_key(TEST_SID));

// Called by PHP's session module: read for a merge, no lock.
var_dump(session_set_save_handler($handler, true));
session_id(TEST_SID);
var_dump(session_start());
var_dump(redis('EXISTS', lock_key(TEST_SID)));
$_SESSION = ['n' => 1];
session_write_close();
var_dump(redis('EXISTS', data_key(TEST_SID)), redis('EXISTS', lock_key(TEST_SID)));
redis('DEL', data_key(TEST_SID));
?>
--EXPECT--
string(0) ""
int(1)
bool(true)
int(0)
bool(true)
bool(true)
int(0)
int(1)
int(0)
