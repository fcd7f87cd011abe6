<?php
// The stack's liveness probe (deploy/local/stack.sh needs one in DOC_ROOT).
require __DIR__ . '/../../../../deploy/local/www/hello.php';
