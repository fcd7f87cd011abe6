--TEST--
The extension registers the stickless save handler, the class and its ini settings without any startup diagnostics
--INI--
error_reporting=-1
--FILE--
<?php
var_dump(extension_loaded('stickless'));
ob_start(); phpinfo(INFO_MODULES); $info = ob_get_clean();
var_dump(preg_match('/Registered save handlers => .*\bstickless\b/', $info) === 1);
var_dump(array_keys(class_implements('Stickless\SessionHandler')));
echo (new ReflectionMethod('Stickless\SessionHandler', 'read'))->getReturnType(), "\n";
echo (new ReflectionMethod('Stickless\SessionHandler', 'gc'))->getReturnType(), "\n";
foreach (['prefix', 'lock_wait_ms', 'lock_ttl_ms', 'on_lock_timeout', 'connect_timeout_ms', 'timeout_ms', 'max_size'] as $o) {
    echo "stickless.$o=", ini_get("stickless.$o"), "\n";
}
?>
--EXPECT--
bool(true)
bool(true)
array(3) {
  [0]=>
  string(23) "SessionHandlerInterface"
  [1]=>
  string(18) "SessionIdInterface"
  [2]=>
  string(38) "SessionUpdateTimestampHandlerInterface"
}
string|false
int|false
stickless.prefix=stickless:
stickless.lock_wait_ms=5000
stickless.lock_ttl_ms=3000
stickless.on_lock_timeout=fail
stickless.connect_timeout_ms=500
stickless.timeout_ms=1000
stickless.max_size=4194304
