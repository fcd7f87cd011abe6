--TEST--
read_and_close reads the last saved data without waiting for a request that holds the lock
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('lock_wait_ms=5000');
session_id(TEST_SID);
session_start();
$_SESSION['v'] = 'saved';
session_write_close();

$child = spawn_php('use_stickless(); session_id(TEST_SID); session_start(); $_SESSION["v"] = "unsaved"; ob_end_clean(); echo "locked\n"; usleep(3000000);', $pipes);
var_dump(trim(fgets($pipes[1])));
session_id(TEST_SID);
$t = microtime(true);
var_dump(session_start(['read_and_close' => true]), $_SESSION['v']);
var_dump(microtime(true) - $t < 2.0); // the holder keeps the lock for 3 s
var_dump(redis('EXISTS', lock_key(TEST_SID)));
proc_close($child);
?>
--EXPECT--
string(6) "locked"
bool(true)
string(5) "saved"
bool(true)
int(1)
