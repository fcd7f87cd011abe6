<?php
// The stack's readiness probe (deploy/local/stack.sh needs one in DOC_ROOT).
require __DIR__ . '/../../../../deploy/local/www/healthz.php';
