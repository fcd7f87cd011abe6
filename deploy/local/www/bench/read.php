<?php
// Benchmark: read-only. session_start(read_and_close): no write, and the lock
// (for handlers that lock) is released at once.
// 200 {"pod": "pod-a", "n": 3, "k": 0}; n is null when the session has no
// counter; k is the sum of merge.php's per-slot counters (k0, k1, ...).
declare(strict_types=1);
require __DIR__ . '/_common.php';

$pod = bench_begin();
bench_session_start($pod, ['read_and_close' => true]);
$n = isset($_SESSION['n']) ? (int) $_SESSION['n'] : null;
$k = 0;
foreach ($_SESSION as $name => $value) {
    if (preg_match('/^k\d+$/', (string) $name) === 1) {
        $k += (int) $value;
    }
}
bench_reply(['pod' => $pod, 'n' => $n, 'k' => $k]);
