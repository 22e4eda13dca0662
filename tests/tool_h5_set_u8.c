/* tool_h5_set_u8 FILE DATASET INDEX VALUE: writes VALUE into element INDEX of a 1-D uint8
 * dataset, through HDF5 (so a checksummed chunk stays valid). The integration tests use it to
 * plant bad values, such as a label outside the classes, in a copy of a real data file. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s FILE DATASET INDEX VALUE\n", argv[0]);
        return 2;
    }
    hsize_t idx = strtoull(argv[3], NULL, 10);
    unsigned char v = (unsigned char)atoi(argv[4]);
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, argv[2], H5P_DEFAULT);
    hid_t space = d < 0 ? -1 : H5Dget_space(d);
    hid_t mem = H5Screate_simple(1, (hsize_t[]){1}, NULL);
    int rc = space < 0 || H5Sselect_elements(space, H5S_SELECT_SET, 1, &idx) < 0 ||
             H5Dwrite(d, H5T_NATIVE_UCHAR, mem, space, H5P_DEFAULT, &v) < 0;
    H5Sclose(mem);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    if (f >= 0 && H5Fclose(f) < 0) rc = 1;
    if (rc) fprintf(stderr, "%s: cannot set %s[%s] = %s\n", argv[1], argv[2], argv[3], argv[4]);
    return rc;
}
