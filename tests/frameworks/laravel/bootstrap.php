<?php
// The application, built as a Laravel 10 skeleton's bootstrap/app.php builds
// it (which Laravel 11 to 13 still run), from Debian's php-laravel-framework
// under /usr/share/php (its autoload.php loads Illuminate and what it needs);
// no Composer project. Writable state (the package and service manifests,
// storage) goes under $FW_VAR_DIR/<pod> [<temp dir>/stickless-fw-laravel].
declare(strict_types=1);

require '/usr/share/php/Illuminate/autoload.php';
require __DIR__ . '/app/AppServiceProvider.php';
require __DIR__ . '/app/Kernel.php';

$var = (getenv('FW_VAR_DIR') ?: sys_get_temp_dir() . '/stickless-fw-laravel') . '/' . (getenv('POD_NAME') ?: 'pod');
foreach (["$var/bootstrap/cache", "$var/storage/framework", "$var/storage/logs"] as $dir) {
    if (!is_dir($dir) && !mkdir($dir, 0o777, true) && !is_dir($dir)) {
        throw new RuntimeException("cannot create $dir");
    }
}

$app = new Illuminate\Foundation\Application(__DIR__);
$app->useBootstrapPath("$var/bootstrap");
$app->useStoragePath("$var/storage");
if (method_exists($app, 'dontMergeFrameworkConfiguration')) {
    // Laravel 11+ merges its default config from a directory Debian moves.
    $app->dontMergeFrameworkConfiguration();
}
$app->singleton(Illuminate\Contracts\Http\Kernel::class, SticklessFw\Laravel\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, Illuminate\Foundation\Exceptions\Handler::class);

return $app;
