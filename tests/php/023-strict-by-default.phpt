--TEST--
Strict mode is on by default where stickless is the configured handler: a client-chosen ID is never adopted (ini_get still shows php.ini's value)
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
$ini = ['session.save_handler' => 'stickless', 'session.save_path' => '"' . test_url() . '"',
    'session.use_strict_mode' => '0', 'session.use_cookies' => '0', 'session.cache_limiter' => ''];
$code = 'session_id("fixatedbyanattacker0123456789"); session_start(); $_SESSION["x"] = 1; echo session_id() === "fixatedbyanattacker0123456789" ? "adopted" : "replaced", " strict=", ini_get("session.use_strict_mode");';
echo run_php($code, $ini), "\n";
var_dump(redis('EXISTS', data_key('fixatedbyanattacker0123456789')));
// Turned off explicitly, PHP's documented non-strict behaviour comes back.
echo run_php($code, $ini + ['stickless.strict_mode' => '0']), "\n";
var_dump(redis('EXISTS', data_key('fixatedbyanattacker0123456789')));
?>
--EXPECT--
replaced strict=0
int(0)
adopted strict=0
int(1)
