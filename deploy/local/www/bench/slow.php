<?php
// Benchmark: a slow request that holds the session for 50 ms (?ms=0..5000 to
// change that) before $_SESSION['n']++. Concurrent requests of one user show
// whether the handler serialises them (locking: no lost increments, but they
// queue) or lets them race (lost updates: n lags behind the request count).
// 200 {"pod": "pod-a", "n": 3}
declare(strict_types=1);
require __DIR__ . '/_common.php';

$ms = filter_var($_GET['ms'] ?? 50, FILTER_VALIDATE_INT, ['options' => ['min_range' => 0, 'max_range' => 5000]]);
$ms = $ms === false ? 50 : $ms;

$pod = bench_begin();
bench_session_start($pod);
usleep($ms * 1000);
$n = (int) ($_SESSION['n'] ?? 0) + 1;
$_SESSION['n'] = $n;
bench_session_write($pod);
bench_reply(['pod' => $pod, 'n' => $n]);
