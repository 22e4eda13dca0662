/* The linreg job's binary: what jobs/main.c does for `dtrain JOB`, for this job alone (a
 * job added to dtrain itself goes into the jobs[] list of jobs/main.c instead). */
#include "linreg.h"
#include "trainer.h"

int main(int argc, char **argv) { return trainer_main(&linreg_job, argc, argv); }
