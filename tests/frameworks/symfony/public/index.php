<?php
// Front controller of the Symfony test application (see ../src/Kernel.php),
// for deploy/local/stack.sh with DOC_ROOT=tests/frameworks/symfony/public
// and FRONT_CONTROLLER=index.php. Symfony comes from Debian's packages
// (php-symfony-framework-bundle and its dependencies) under /usr/share/php,
// each with the autoload.php Debian generates for it; no Composer project.
//   $FW_SESSION   native | object: the session set-up (see Kernel.php) [native]
//   $FW_VAR_DIR   where the container is compiled, a directory per pod
//                 [<temp dir>/stickless-fw-symfony]
declare(strict_types=1);

use SticklessFw\Symfony\Kernel;
use Symfony\Component\HttpFoundation\Request;

require '/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php';
// ContainerBuilder::willBeAvailable() asks Composer\InstalledVersions (from
// Debian's composer package), which knows no packages here: every class that
// exists counts as available.
if (!class_exists(Composer\InstalledVersions::class)) {
    require '/usr/share/php/Composer/InstalledVersions.php';
}
require __DIR__ . '/../src/Kernel.php';

$pod = getenv('POD_NAME') ?: 'pod';
$var = (getenv('FW_VAR_DIR') ?: sys_get_temp_dir() . '/stickless-fw-symfony') . '/' . $pod;
$kernel = new Kernel(getenv('FW_SESSION') ?: 'native', $var);
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
