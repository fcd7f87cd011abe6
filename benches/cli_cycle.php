<?php
// One CLI process runs N request-like cycles on one session:
// session_start() -> change -> session_write_close(). Prints µs per cycle.
// Run by benches/cli-cycle.sh for each handler, side by side.
$n = (int)($argv[1] ?? 2000);
ini_set('session.use_cookies', '0');
ini_set('session.cache_limiter', '');
// The session is created the way a first request creates it: strict mode
// (stickless's default) adopts no ID a client makes up.
session_start();
$id = session_id();
$_SESSION['n'] = 0;
session_write_close();
$t = hrtime(true);
for ($i = 0; $i < $n; $i++) {
    session_id($id);
    if (!session_start()) {
        fwrite(STDERR, "session_start failed\n");
        exit(1);
    }
    $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
    $_SESSION['user'] = ['id' => 42, 'name' => 'ann', 'roles' => ['admin', 'editor']];
    session_write_close();
}
$us = (hrtime(true) - $t) / 1e3 / $n;
session_id($id);
session_start(['read_and_close' => true]);
if ($_SESSION['n'] !== $n) {
    fwrite(STDERR, "lost updates: {$_SESSION['n']} of $n\n");
    exit(1);
}
printf("%.1f\n", $us);
