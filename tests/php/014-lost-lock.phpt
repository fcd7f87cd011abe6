--TEST--
A write whose lease lapsed lands if nobody changed the session, and is refused with a warning naming the hashed session and the reason if someone did
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
session_id(TEST_SID);
session_start();
$_SESSION['v'] = 1;
session_write_close();

session_id(TEST_SID);
session_start();
var_dump(redis('PTTL', lock_key(TEST_SID)) > 0);
redis('DEL', lock_key(TEST_SID));   // as if the lease had lapsed
$_SESSION['v'] = 2;
var_dump(session_write_close());   // nobody wrote meanwhile: it lands
var_dump(stickless_stats()['lapsed_writes']);

session_id(TEST_SID);
session_start();
redis('SET', lock_key(TEST_SID), 'someone-else');  // ...and another request took it
$_SESSION['v'] = 3;
var_dump(session_write_close());
redis('DEL', lock_key(TEST_SID));

session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION['v']);
?>
--EXPECTF--
bool(true)
bool(true)
int(1)

Warning: stickless: write to session {%x} refused: the lock lapsed (its renewals did not reach Redis for lock_ttl_ms) and another request holds it now in %s on line %d

Warning: session_write_close(): Failed to write session data (stickless). Please verify that the current setting of session.save_path is correct (%s) in %s on line %d
bool(true)
int(2)
