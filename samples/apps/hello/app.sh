#!/bin/sh
echo "app.sh says: $GREETING"
