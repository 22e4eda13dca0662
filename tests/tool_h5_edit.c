/* tool_h5_edit: small edits of HDF5 files for the integration tests, through HDF5 (so that a
 * checksummed chunk stays valid), to plant what a test needs in a copy of a real file.
 *
 *   tool_h5_edit FILE set-u8 DATASET INDEX VALUE   element INDEX of a 1-D uint8 dataset
 *   tool_h5_edit FILE drop-line ATTR PREFIX        drop the lines starting with PREFIX from
 *                                                  the root's string attribute ATTR */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_u8(hid_t f, const char *dset, const char *index, const char *value) {
    hsize_t idx = strtoull(index, NULL, 10);
    unsigned char v = (unsigned char)atoi(value);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    hid_t space = d < 0 ? -1 : H5Dget_space(d);
    hid_t mem = H5Screate_simple(1, (hsize_t[]){1}, NULL);
    int rc = space < 0 || H5Sselect_elements(space, H5S_SELECT_SET, 1, &idx) < 0 ||
             H5Dwrite(d, H5T_NATIVE_UCHAR, mem, space, H5P_DEFAULT, &v) < 0;
    H5Sclose(mem);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* reads the attribute as text (fixed or variable length), rewrites it as a fixed string */
static int drop_line(hid_t f, const char *attr, const char *prefix) {
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t type = H5Aget_type(a);
    char *text = NULL;
    if (H5Tis_variable_str(type) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        char *v = NULL;
        if (H5Aread(a, mt, &v) >= 0) text = strdup(v);
        H5free_memory(v);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(type);
        text = calloc(n + 1, 1);
        if (H5Aread(a, type, text) < 0) text[0] = '\0';
    }
    H5Tclose(type);
    H5Aclose(a);
    if (!text) return 1;
    char *out = calloc(strlen(text) + 1, 1);
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        if (strncmp(line, prefix, strlen(prefix)) != 0) strncat(out, line, len);
        line += len;
    }
    int rc = H5Adelete(f, attr) < 0;
    hid_t st = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(st, strlen(out) + 1);
    hid_t na = rc ? -1 : H5Acreate2(f, attr, st, sp, H5P_DEFAULT, H5P_DEFAULT);
    rc = rc || na < 0 || H5Awrite(na, st, out) < 0;
    if (na >= 0) H5Aclose(na);
    H5Sclose(sp);
    H5Tclose(st);
    free(text);
    free(out);
    return rc;
}

int main(int argc, char **argv) {
    int set = argc == 6 && strcmp(argv[2], "set-u8") == 0, drop = argc == 5 && strcmp(argv[2], "drop-line") == 0;
    if (!set && !drop) {
        fprintf(stderr, "usage: %s FILE set-u8 DATASET INDEX VALUE | FILE drop-line ATTR PREFIX\n", argv[0]);
        return 2;
    }
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    int rc = f < 0 || (set ? set_u8(f, argv[3], argv[4], argv[5]) : drop_line(f, argv[3], argv[4]));
    if (f >= 0 && H5Fclose(f) < 0) rc = 1;
    if (rc) fprintf(stderr, "%s: cannot %s\n", argv[1], argv[2]);
    return rc;
}
