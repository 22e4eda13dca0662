/* nccl.h: the emulator stands in for NCCL, over MPI (../cuda_emu_nccl.h). */
#include "../cuda_emu_nccl.h"
