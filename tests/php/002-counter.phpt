--TEST--
A session written by one request is read back by the next, and the ID never reaches Redis
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
for ($i = 0; $i < 3; $i++) {
    session_id(TEST_SID);
    var_dump(session_start());
    $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
    $_SESSION['bin'] = "\x00\xff";
    session_write_close();
}
session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION['n'], $_SESSION['bin'] === "\x00\xff");
$keys = redis('KEYS', test_prefix() . '*');
var_dump($keys === [data_key(TEST_SID)]);
foreach ($keys as $k) var_dump(str_contains($k, TEST_SID) || str_contains(redis('GET', $k), TEST_SID));
var_dump(redis('PTTL', data_key(TEST_SID)) > 1000 * ((int)ini_get('session.gc_maxlifetime') - 5));
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
int(3)
bool(true)
bool(true)
bool(false)
bool(true)
