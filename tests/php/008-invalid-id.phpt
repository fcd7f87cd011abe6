--TEST--
An invalid session ID is rejected without contacting Redis
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
// A closed port: had the handler contacted Redis, the warning would say so.
ini_set('session.save_path', 'redis://127.0.0.1:1/0');
$h = new Stickless\SessionHandler('redis://127.0.0.1:1/0');
foreach (['', str_repeat('a', 257), 'abcdefghijklmnopqrstuvwxyz!', "abcdefghijklmnopqrstuvwxy\x00z"] as $bad) {
    var_dump($h->read($bad));
    var_dump($h->validateId($bad));
}
?>
--EXPECTF--
Warning: stickless: session ID has 0 characters; expected 1 to 256; rejected without contacting Redis in %s on line %d
bool(false)
bool(false)

Warning: stickless: session ID has 257 characters; expected 1 to 256; rejected without contacting Redis in %s on line %d
bool(false)
bool(false)

Warning: stickless: session ID has a character outside 0-9a-zA-Z,- at position 26; rejected without contacting Redis in %s on line %d
bool(false)
bool(false)

Warning: stickless: session ID has a character outside 0-9a-zA-Z,- at position 25; rejected without contacting Redis in %s on line %d
bool(false)
bool(false)
