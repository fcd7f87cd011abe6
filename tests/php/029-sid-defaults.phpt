--TEST--
New session IDs with PHP's own ID settings carry at least 128 bits, from session_start(), session_regenerate_id(), session_create_id() and create_sid(), and nothing deprecated is raised (PHP 8.4 deprecates the settings themselves)
--INI--
error_reporting=-1
--FILE--
<?php
require __DIR__ . '/inc/setup.inc';
use_stickless();
$bits = (int) ini_get('session.sid_bits_per_character');
$length = (int) ini_get('session.sid_length');
$alphabet = [4 => '/^[0-9a-f]+$/', 5 => '/^[0-9a-v]+$/', 6 => '/^[0-9a-zA-Z,-]+$/'][$bits];
function check(string $what, string $id): void {
    global $bits, $length, $alphabet;
    if (strlen($id) !== $length || !preg_match($alphabet, $id) || strlen($id) * $bits < 128) {
        echo "$what: $id is not $length characters of $bits bits\n";
    }
}
session_start();
check('session_start', session_id());
$_SESSION['x'] = 1;
$first = session_id();
session_regenerate_id(true);
check('session_regenerate_id', session_id());
var_dump(session_id() !== $first);
session_write_close();
var_dump(redis('EXISTS', data_key(session_id())), redis('EXISTS', data_key($first)));
check('session_create_id', session_create_id());
check('create_sid', (new Stickless\SessionHandler(test_url()))->create_sid());
echo "done\n";
?>
--EXPECT--
bool(true)
int(1)
int(0)
done
