--TEST--
stickless.* ini settings apply, also when changed at run time, and query parameters in save_path override them
--INI--
error_reporting=-1
stickless.prefix=from-ini:
stickless.lock_ttl_ms=7000
stickless.strict_mode=0
--SKIPIF--
<?php try { ini_set('session.cache_expire', '180'); } catch (Error) { die('skip switches session.* settings at run time, which this PHP refuses while session.upload_progress.enabled is on'); } ?>
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
ini_set('session.save_handler', 'stickless');
ini_set('session.use_cookies', '0');
ini_set('session.save_path', getenv('STICKLESS_TEST_URL'));
session_id(TEST_SID);
session_start();
$tag = substr(hash('sha256', "stickless/session-key/v1\0" . TEST_SID), 0, 32);
$ttl = redis('PTTL', "from-ini:{{$tag}}:lock");
var_dump($ttl > 6000 && $ttl <= 7000);
$_SESSION['x'] = 1;
session_write_close();
var_dump(redis('EXISTS', "from-ini:{{$tag}}:data"));

ini_set('session.save_path', getenv('STICKLESS_TEST_URL') . '?prefix=from-url:&lock_ttl_ms=3000');
session_id(TEST_SID);
session_start();
$ttl = redis('PTTL', "from-url:{{$tag}}:lock");
var_dump($ttl > 2000 && $ttl <= 3000);
$_SESSION['x'] = 1;
session_write_close();
var_dump(redis('EXISTS', "from-url:{{$tag}}:data"));

// The same save_path again, with an ini value changed and then changed back:
// the configuration built for each set of values is reused, never a stale one.
ini_set('session.save_path', getenv('STICKLESS_TEST_URL'));
foreach (['from-set:', 'from-ini:'] as $prefix) {
    ini_set('stickless.prefix', $prefix);
    session_id(TEST_SID);
    session_start();
    var_dump(redis('PTTL', "{$prefix}{{$tag}}:lock") > 0);
    $_SESSION['x'] = $prefix;
    session_write_close();
    var_dump(redis('GET', "{$prefix}{{$tag}}:data") !== null);
}
redis('DEL', "from-ini:{{$tag}}:data", "from-url:{{$tag}}:data", "from-set:{{$tag}}:data");
?>
--EXPECT--
bool(true)
int(1)
bool(true)
int(1)
bool(true)
bool(true)
bool(true)
bool(true)
