--TEST--
A flipped byte, a value swapped between two sessions and a truncated value each give a warning and an empty session
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
const KEYS = 'k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
use_stickless('encryption_keys=' . urlencode(KEYS));
$other = 'anothersession0123456789abcdef';
foreach ([TEST_SID => 'mine', $other => 'theirs'] as $id => $who) {
    session_id($id);
    session_start();
    $_SESSION['who'] = $who;
    session_write_close();
}
$mine = redis('GET', data_key(TEST_SID));
$theirs = redis('GET', data_key($other));

function read_back(): void {
    session_id(TEST_SID);
    var_dump(session_start(['read_and_close' => true]), $_SESSION);
}
$flipped = $mine;
$flipped[strlen($flipped) - 5] = chr(ord($flipped[strlen($flipped) - 5]) ^ 1);
foreach (['flipped' => $flipped, 'swapped' => $theirs, 'truncated' => substr($mine, 0, -7)] as $what => $bad) {
    echo "$what:\n";
    redis('SET', data_key(TEST_SID), $bad);
    read_back();
}
redis('SET', data_key(TEST_SID), $mine);
echo "restored:\n";
read_back();
?>
--EXPECTF--
flipped:

Warning: stickless: session {%x} holds an unreadable value (failed authentication: tampered with, truncated, or copied from another session); starting empty in %s on line %d
bool(true)
array(0) {
}
swapped:

Warning: stickless: session {%x} holds an unreadable value (failed authentication: tampered with, truncated, or copied from another session); starting empty in %s on line %d
bool(true)
array(0) {
}
truncated:

Warning: stickless: session {%x} holds an unreadable value (the envelope is damaged: %s); starting empty in %s on line %d
bool(true)
array(0) {
}
restored:
bool(true)
array(1) {
  ["who"]=>
  string(4) "mine"
}
