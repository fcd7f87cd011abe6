--TEST--
A connection opened before fork() is never shared: parent and child each get their own, and no update is lost
--SKIPIF--
<?php if (!function_exists('pcntl_fork')) die('skip pcntl not available'); ?>
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless('lock_wait_ms=10000');
function bump(int $times): void {
    for ($i = 0; $i < $times; $i++) {
        session_id(TEST_SID);
        if (!session_start()) exit(1);
        $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
        session_write_close();
    }
}
bump(1); // the parent's connection is open from here on
$pid = pcntl_fork();
if ($pid === 0) {
    bump(50);
    exit(0);
}
bump(50);
pcntl_waitpid($pid, $status);
var_dump(pcntl_wexitstatus($status));
session_id(TEST_SID);
session_start(['read_and_close' => true]);
var_dump($_SESSION['n']);
?>
--EXPECT--
int(0)
int(101)
