--TEST--
Compression: zstd and lz4 values are smaller in Redis and read back by any setting
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
// Each step is a PHP process of its own, started with its settings, so the
// test runs with session.upload_progress.enabled on too.
const CART = '$cart = []; for ($i = 0; $i < 100; $i++) { $cart[] = ["sku" => sprintf("SKU-%04d", $i), "name" => "Loose leaf green tea", "qty" => $i % 3 + 1]; }';
function step(string $query, string $code): string {
    $code = CART . ' use_stickless(' . var_export($query, true) . '); session_id(TEST_SID); ' . $code;
    return run_php($code, stickless_ini($query));
}
function stored(): string {
    return redis('GET', data_key(TEST_SID));
}
echo step('', 'session_start(); $_SESSION["cart"] = $cart; echo ini_get("stickless.compression"), " ", ini_get("stickless.compression_threshold"), " ", strlen(serialize($cart)), "\n";');
$plain = strlen(stored());
foreach (['zstd', 'lz4'] as $codec) {
    echo step("compression=$codec", '$_SESSION = []; session_start(); $_SESSION["codec"] = "' . $codec . '";');
    $n = substr_count(stored(), 'Loose leaf');
    echo $codec, ': ', strlen(stored()) * 3 < $plain ? 'under a third' : strlen(stored()) . " of $plain bytes",
        ', the repeated name stored ', $n <= 1 ? 'at most once' : "$n times", "\n";
    // A reader with compression off decodes it all the same.
    echo step('', 'session_start(["read_and_close" => true]); var_dump($_SESSION["cart"] === $cart && $_SESSION["codec"] === "' . $codec . '");');
}
// Below the threshold a payload is stored as it is.
echo step('compression=zstd&compression_threshold=100000', 'session_start(); $_SESSION["codec"] = "none";');
var_dump(substr_count(stored(), 'Loose leaf'));
// A codec this build does not have is refused, naming the option.
echo step('compression=brotli', 'var_dump(session_start());');
?>
--EXPECTF--
none 1024 %d
zstd: under a third, the repeated name stored at most once
bool(true)
lz4: under a third, the repeated name stored at most once
bool(true)
int(100)

Warning: stickless: session.save_path: option `compression` has invalid value `brotli`: expected `zstd`, `lz4` or `none` in %s on line %d

Warning: session_start(): Failed to initialize storage module: stickless (path: %s) in %s on line %d
bool(false)
