#!/usr/bin/env bash
# Quick start 1: install what is missing, build, convert the shipped MNIST subset to HDF5,
# and train LeNet-5 data-parallel on 2 ranks. Ends with the test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# the demo's own run directory: a fresh start refuses a directory that already holds a run
rm -rf runs/demo-lenet
mpirun --oversubscribe -np 2 build/dtrain classify --model lenet --data data/mnist.h5 --epochs 5 --out runs/demo-lenet
