<?php
// Field scenario: what the user's session holds now, read with the lock
// like any request (so it waits for a request that still holds it), held
// ?ms=0..60000 [0] before it is closed unchanged: a long request that
// writes nothing must raise no warning whatever its length.
// 200 {"pod": "pod-b", "csrf": "<16 hex>" | null, "n": 0}
declare(strict_types=1);
require __DIR__ . '/../bench/_common.php';

$ms = filter_var($_GET['ms'] ?? 0, FILTER_VALIDATE_INT, ['options' => ['min_range' => 0, 'max_range' => 60000]]);
$ms = $ms === false ? 0 : $ms;

$pod = bench_begin();
bench_session_start($pod);
$body = ['pod' => $pod, 'csrf' => $_SESSION['csrf'] ?? null, 'n' => (int) ($_SESSION['n'] ?? 0)];
usleep($ms * 1000);
bench_session_write($pod);
bench_reply($body);
