--TEST--
Encryption at rest: turned on without logging anyone out, nothing readable in Redis, keys rotate
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
const A = 'a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const B = 'b:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=';
function open_with(string $keys, bool $readOnly = true) {
    ini_set('session.save_path', test_url('encryption_keys=' . urlencode($keys)));
    session_id(TEST_SID);
    session_start($readOnly ? ['read_and_close' => true] : []);
}
use_stickless();
// A session from before encryption was turned on.
session_id(TEST_SID);
session_start();
$_SESSION['card'] = 'visible-secret';
session_write_close();
var_dump(str_contains(redis('GET', data_key(TEST_SID)), 'visible-secret'));
// With keys, a plain value is refused: whoever can write Redis could forge one...
open_with(A);
var_dump($_SESSION);
// ...unless `plain` is listed while encryption is rolled out.
open_with(A . ',plain', false);
$_SESSION['seen'] = 1;
session_write_close();
var_dump(str_contains(redis('GET', data_key(TEST_SID)), 'visible-secret'));

// Rotate: B seals, A still opens.
open_with(B . ',' . A);
var_dump($_SESSION['card']);
// Only B: the value sealed with A cannot be opened.
open_with(B);
var_dump($_SESSION);
// The next write under B,A reseals with B...
open_with(B . ',' . A, false);
$_SESSION['seen'] = true;
session_write_close();
// ...so A can be retired.
open_with(B);
var_dump($_SESSION['card']);
// Without keys, an encrypted value is never handed to PHP.
ini_set('session.save_path', test_url());
session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION);
?>
--EXPECTF--
bool(true)

Warning: stickless: session {%x} holds an unreadable value (stored unencrypted, but encryption_keys are configured; list `plain` after the keys while turning encryption on); starting empty in %s on line %d
array(0) {
}
bool(false)
string(14) "visible-secret"

Warning: stickless: session {%x} holds an unreadable value (encrypted with key `a`, which is not in encryption_keys); starting empty in %s on line %d
array(0) {
}
string(14) "visible-secret"

Warning: stickless: session {%x} holds an unreadable value (encrypted, but no encryption_keys are configured); starting empty in %s on line %d
array(0) {
}
