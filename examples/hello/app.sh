#!/bin/sh
echo "@GREETING@, $1! (running as $(id -un) in $(pwd), built at $(cat /app/built-at))"
