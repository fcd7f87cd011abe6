<?php
// Benchmark: the common case. Starts the session, $_SESSION['n']++, writes it.
// 200 {"pod": "pod-a", "n": 3}
declare(strict_types=1);
require __DIR__ . '/_common.php';

$pod = bench_begin();
bench_session_start($pod);
$n = (int) ($_SESSION['n'] ?? 0) + 1;
$_SESSION['n'] = $n;
bench_session_write($pod);
bench_reply(['pod' => $pod, 'n' => $n]);
