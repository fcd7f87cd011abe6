<?php
// Benchmark and tests: parallel requests of one user that change different
// keys. Holds the session ?ms=50 ms (0..5000), like slow.php, then
// increments $_SESSION["k<slot>"] (?slot=0..63), so requests with different
// slots change different keys. ?mode=merge|lock sets the request's
// concurrency with the session_start() option (default: the site's,
// stickless.concurrency). ?slot=shared makes every request change the same
// key; ?tag=X stores X in it instead of a count. ?refs=1 stores a reference between two variables, which merge mode
// cannot merge: such a session falls back to the lock.
// 200 {"pod": "pod-a", "n": 3}; a write refused for a key another request
// changed is a 503 whose error names the key.
declare(strict_types=1);
require __DIR__ . '/_common.php';

$ms = filter_var($_GET['ms'] ?? 50, FILTER_VALIDATE_INT, ['options' => ['min_range' => 0, 'max_range' => 5000]]);
$ms = $ms === false ? 50 : $ms;
$slot = $_GET['slot'] ?? '0';
if ($slot !== 'shared') {
    $slot = filter_var($slot, FILTER_VALIDATE_INT, ['options' => ['min_range' => 0, 'max_range' => 63]]);
    $slot = $slot === false ? 0 : $slot;
}
$options = [];
$mode = $_GET['mode'] ?? '';
if ($mode === 'merge' || $mode === 'lock') {
    $options['stickless_concurrency'] = $mode;
}

$pod = bench_begin();
bench_session_start($pod, $options);
usleep($ms * 1000);
$key = 'k' . $slot;
$n = (int) ($_SESSION[$key] ?? 0) + 1;
$tag = $_GET['tag'] ?? null;
$_SESSION[$key] = is_string($tag) ? $tag : $n;
if (($_GET['refs'] ?? '') === '1') {
    $_SESSION['alias'] = 1;
    $_SESSION['same'] = &$_SESSION['alias'];
}
bench_session_write($pod);
bench_reply(['pod' => $pod, 'n' => $n]);
