--TEST--
phpinfo() shows the server in force, the settings and the worker's counters, and never the password
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
$u = parse_url(getenv('STICKLESS_TEST_URL'));
use_stickless();
ini_set('session.save_path', "redis://:hunter2@{$u['host']}:{$u['port']}/0?prefix=" . test_prefix() . '&strict_mode=0');
session_id(TEST_SID);
@session_start(); // the test server has no password; AUTH fails
ini_set('session.save_path', test_url('strict_mode=0'));
session_id(TEST_SID);
session_start();
session_write_close();
ob_start();
phpinfo(INFO_MODULES);
$info = ob_get_clean();
var_dump(str_contains($info, 'hunter2'));
preg_match('/^stickless\n.*?(?=\n\n\S+\n\n)/ms', $info, $m);
foreach (explode("\n", $m[0]) as $line) {
    if (preg_match('/^(Server in force|Sessions opened|Lock waits|Lock timeouts|Errors|stickless\.lock_wait_ms) =>/', $line)) echo $line, "\n";
}
?>
--EXPECTF--
bool(false)
Server in force => redis://127.0.0.1:%d/0
Sessions opened => 2
Lock waits => 0
Lock timeouts => 0
Errors => 1
stickless.lock_wait_ms => 5000 => 5000
