--TEST--
Frameworks that call only read/write/destroy (Laravel): the lock is released on write, on destroy, and when the handler goes away
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
$h = new Stickless\SessionHandler(test_url('lock_wait_ms=0'));
var_dump($h->read(TEST_SID));
var_dump(redis('EXISTS', lock_key(TEST_SID)));
var_dump($h->write(TEST_SID, 'user|s:3:"ann";'));
var_dump(redis('EXISTS', lock_key(TEST_SID)));

var_dump($h->read(TEST_SID));
var_dump($h->destroy(TEST_SID));
var_dump(redis('EXISTS', lock_key(TEST_SID)), redis('EXISTS', data_key(TEST_SID)));

// Read and never write: the lock goes when the handler does (end of request).
var_dump($h->read(TEST_SID));
var_dump(redis('EXISTS', lock_key(TEST_SID)));
unset($h);
var_dump(redis('EXISTS', lock_key(TEST_SID)));
?>
--EXPECT--
string(0) ""
int(1)
bool(true)
int(0)
string(15) "user|s:3:"ann";"
bool(true)
int(0)
int(0)
string(0) ""
int(1)
int(0)
