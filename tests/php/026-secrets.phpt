--TEST--
Passwords and keys come from env: or file:, and never show in phpinfo() or in warnings
--INI--
error_reporting=-1
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
$file = tempnam(sys_get_temp_dir(), 'pw');
file_put_contents($file, "from-a-file\n");
putenv('STICKLESS_TEST_PW=from-env');
$u = parse_url(getenv('STICKLESS_TEST_URL'));
$base = "redis://{$u['host']}:{$u['port']}/0";
use_stickless();
ob_start();
foreach (["$base?password=file:$file", "$base?password=env:STICKLESS_TEST_PW", "redis://:inline-secret@{$u['host']}:{$u['port']}/0"] as $path) {
    ini_set('session.save_path', $path);
    session_id(TEST_SID);
    session_start();  // the test server has no password: AUTH is refused
}
ini_set('stickless.encryption_keys', 'k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=');
phpinfo(INFO_MODULES);
$out = ob_get_clean();
foreach (['from-a-file', 'from-env', 'inline-secret', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8'] as $secret) {
    echo $secret, ': ', str_contains($out, $secret) ? 'LEAKED' : 'hidden', "\n";
}
var_dump(substr_count($out, 'authentication failed') >= 3);
preg_match('/^session\.save_path => (.*)$/m', $out, $m);
echo $m[1], "\n";
preg_match('/^stickless\.encryption_keys => (.*)$/m', $out, $m);
echo $m[1], "\n";
unlink($file);
?>
--EXPECTF--
from-a-file: hidden
from-env: hidden
inline-secret: hidden
AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8: hidden
bool(true)
redis://:***@127.0.0.1:%d/0 => %s
*** => no value
