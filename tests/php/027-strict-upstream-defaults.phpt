--TEST--
Strict mode by default under upstream PHP's defaults (session.upload_progress.enabled=1) and with session.auto_start=1: no fatal, no warning, and a client-chosen ID is never adopted, by the native handler (and by a handler object)
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
$fixated = 'fixatedbyanattacker0123456789';
$base = ['session.save_handler' => 'stickless', 'session.save_path' => '"' . test_url() . '"',
    'session.use_strict_mode' => '0', 'session.use_cookies' => '0', 'session.cache_limiter' => '',
    'session.upload_progress.enabled' => '1'];
$report = 'echo session_id() === "' . $fixated . '" ? "adopted" : "replaced", "\n";';
// The native handler, started by the script; then by session.auto_start,
// before any line of the script ran (a fixated cookie under auto_start is
// tested through php-fpm, tests/tests/upstream_defaults.rs).
echo run_php('session_id("' . $fixated . '"); session_start(); $_SESSION["x"] = 1; ' . $report, $base);
echo run_php('echo session_status() === PHP_SESSION_ACTIVE ? "active" : "none", "\n";',
    $base + ['session.auto_start' => '1']);
// A handler object, as frameworks wire it (upload progress off: with it on,
// PHP itself refuses session_set_save_handler(), whatever the handler).
echo run_php('session_set_save_handler(new Stickless\SessionHandler("' . test_url() . '"), true);'
    . ' session_id("' . $fixated . '"); session_start(); $_SESSION["x"] = 1; ' . $report,
    ['session.save_handler' => 'files', 'session.upload_progress.enabled' => '0'] + $base);
var_dump(redis('EXISTS', data_key($fixated)));
?>
--EXPECT--
replaced
active
replaced
int(0)
