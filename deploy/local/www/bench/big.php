<?php
// Benchmark: a ~20 KB session. Each request first checks the blob it finds
// against its stored CRC32 ("ok": false = a corrupted or torn session), then
// bumps the counter and rewrites the blob with 20 KB of pseudo-random
// printable data derived from the new counter, and its CRC32. Its counter is
// $_SESSION['big_n'], apart from counter.php's and slow.php's 'n', so the
// endpoints can share a session without skewing each other's counts.
// 200 {"pod": "pod-a", "ok": true, "n": 3}; a fresh session is "ok": true, "n": 1.
declare(strict_types=1);
require __DIR__ . '/_common.php';

const BLOB_BYTES = 20480;

/** 20480 base64 characters: 15360 bytes of SHA-512 output seeded by $n. */
function blob(int $n): string
{
    $raw = '';
    for ($i = 0; strlen($raw) < BLOB_BYTES / 4 * 3; $i++) {
        $raw .= hash('sha512', "stickless-bench:$n:$i", true);
    }
    return base64_encode(substr($raw, 0, BLOB_BYTES / 4 * 3));
}

$pod = bench_begin();
bench_session_start($pod);

$ok = true;
if (array_key_exists('blob', $_SESSION) || array_key_exists('sum', $_SESSION)) {
    $blob = $_SESSION['blob'] ?? null;
    $ok = is_string($blob)
        && strlen($blob) === BLOB_BYTES
        && ($_SESSION['sum'] ?? null) === crc32($blob);
}

$n = (int) ($_SESSION['big_n'] ?? 0) + 1;
$blob = blob($n);
$_SESSION['big_n'] = $n;
$_SESSION['blob'] = $blob;
$_SESSION['sum'] = crc32($blob);
bench_session_write($pod);
bench_reply(['pod' => $pod, 'ok' => $ok, 'n' => $n]);
