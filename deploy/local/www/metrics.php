<?php echo Stickless\metrics();
