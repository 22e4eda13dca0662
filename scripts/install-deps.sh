#!/usr/bin/env bash
# Installs the Debian 12 packages dtrain needs to build and test, only those missing.
#   scripts/install-deps.sh               build and run
#   scripts/install-deps.sh --with-slurm  also Slurm and munge, for the Slurm test (tests/it_slurm.sh);
#                                          on a systemd workstation this enables their services
set -euo pipefail
PKGS=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools
      libcriterion-dev libopenblas-dev zlib1g-dev libpng-dev libcairo2-dev libjansson-dev
      fonts-dejavu-core libutf8proc-dev python3-venv python3-h5py
      iproute2 nftables # iproute2, nftables: the multi-host tests (tests/netns.sh) and their faults;
      # python3-h5py: the hostile files of tests/it_hostile_ckpt.sh and tests/it_hostile_data.sh
      clang-14 libclang-rt-14-dev) # clang-14 and its libFuzzer/ASan/UBSan runtimes (libclang_rt.*):
      # scripts/fuzz.sh (tests/fuzz)
[ "${1:-}" = --with-slurm ] && PKGS+=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
