/* cuda_runtime_api.h: the emulator stands in for the CUDA runtime and cuBLAS (../cuda_emu_runtime.h). */
#include "../cuda_emu_runtime.h"
