<?php
// Front controller of the Laravel test application, for
// deploy/local/stack.sh with DOC_ROOT=tests/frameworks/laravel/public and
// FRONT_CONTROLLER=index.php; as a Laravel 10 skeleton's public/index.php.
//   $FW_SERIALIZATION   php | json: Laravel's session.serialization [php]
declare(strict_types=1);

use Illuminate\Contracts\Http\Kernel;
use Illuminate\Http\Request;

$app = require __DIR__ . '/../bootstrap.php';
$kernel = $app->make(Kernel::class);
$response = $kernel->handle($request = Request::capture())->send();
$kernel->terminate($request, $response);
