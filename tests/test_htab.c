/* The core's chained hash table (lib/core/htab.h) that fp_cache and
 * fp_weakmap share: find, insert, exact removal, growth, a failed growth,
 * spreading of sequential keys, and its bad arguments. */
#include "testutil.h"

#include "htab.h"

#include <framepool.h>

#include <stdlib.h>

typedef struct item {
    int payload;
    fp__hnode h; /* not the first member: FP__HTAB_ENTRY must find the item */
} item;

static item *item_of(fp__hnode *n)
{
    return FP__HTAB_ENTRY(n, item, h);
}

START_TEST(find_insert_remove)
{
    fp__htab t;
    ck_assert_int_eq(fp__htab_init(&t, 4), FP_OK);
    ck_assert_uint_eq(t.nbuckets, 16);
    ck_assert_ptr_null(fp__htab_find(&t, 7));
    item a = {.payload = 1, .h.key = 7}, b = {.payload = 2, .h.key = 0},
         c = {.payload = 3, .h.key = UINT64_MAX};
    fp__htab_insert(&t, &a.h);
    fp__htab_insert(&t, &b.h);
    fp__htab_insert(&t, &c.h);
    ck_assert_uint_eq(t.count, 3);
    ck_assert_int_eq(item_of(fp__htab_find(&t, 7))->payload, 1);
    ck_assert_int_eq(item_of(fp__htab_find(&t, 0))->payload, 2);
    ck_assert_int_eq(item_of(fp__htab_find(&t, UINT64_MAX))->payload, 3);
    ck_assert_ptr_null(item_of(fp__htab_find(&t, 8)));
    ck_assert_int_eq(fp__htab_remove(&t, &a.h), 1);
    ck_assert_ptr_null(a.h.next);
    ck_assert_int_eq(fp__htab_remove(&t, &a.h), 0); /* not in the table any more */
    ck_assert_ptr_null(fp__htab_find(&t, 7));
    ck_assert_uint_eq(t.count, 2);
    ck_assert_int_eq(fp__htab_remove(&t, &b.h), 1);
    ck_assert_int_eq(fp__htab_remove(&t, &c.h), 1);
    ck_assert_uint_eq(t.count, 0);
    fp__htab_fini(&t);
    fp__htab_fini(&t); /* harmless twice */
}
END_TEST

/* Removal takes out that node, not another one with the same key (what
 * fp_weakmap's on-free callback relies on). */
START_TEST(remove_is_exact_with_equal_keys)
{
    fp__htab t;
    ck_assert_int_eq(fp__htab_init(&t, 1), FP_OK);
    item a = {.payload = 1, .h.key = 42}, b = {.payload = 2, .h.key = 42};
    fp__htab_insert(&t, &a.h);
    fp__htab_insert(&t, &b.h);
    ck_assert_int_eq(item_of(fp__htab_find(&t, 42))->payload, 2); /* newest first */
    ck_assert_int_eq(fp__htab_remove(&t, &a.h), 1);
    ck_assert_int_eq(item_of(fp__htab_find(&t, 42))->payload, 2);
    ck_assert_int_eq(fp__htab_remove(&t, &b.h), 1);
    ck_assert_ptr_null(fp__htab_find(&t, 42));
    fp__htab_fini(&t);
}
END_TEST

/* The table doubles at load 1, keeps every node findable, and spreads
 * sequential keys (short chains). */
START_TEST(grows_and_spreads_sequential_keys)
{
    enum { N = 20000 };
    item *it = calloc(N, sizeof *it);
    ck_assert_ptr_nonnull(it);
    fp__htab t;
    ck_assert_int_eq(fp__htab_init(&t, 4), FP_OK);
    for (int i = 0; i < N; i++) {
        it[i].payload = i;
        it[i].h.key = (uint64_t)i * 4096; /* addresses, ids: regular keys */
        fp__htab_insert(&t, &it[i].h);
        ck_assert_uint_le(t.count, t.nbuckets);
    }
    ck_assert_uint_eq(t.nbuckets, 32768);
    size_t longest = 0;
    for (size_t b = 0; b < t.nbuckets; b++) {
        size_t len = 0;
        for (fp__hnode *n = t.buckets[b]; n; n = n->next)
            len++;
        if (len > longest)
            longest = len;
    }
    ck_assert_msg(longest <= 8, "longest chain %zu", longest);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(item_of(fp__htab_find(&t, (uint64_t)i * 4096))->payload, i);
    for (int i = 0; i < N; i += 2)
        ck_assert_int_eq(fp__htab_remove(&t, &it[i].h), 1);
    ck_assert_uint_eq(t.count, N / 2);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(fp__htab_find(&t, (uint64_t)i * 4096), i % 2 ? &it[i].h : NULL);
    fp__htab_fini(&t);
    free(it);
}
END_TEST

/* A growth whose allocation fails leaves a correct table with longer
 * chains; init's failure leaves nothing to free. */
START_TEST(failed_allocations)
{
    tu_alloc_install();
    fp__htab t;
    tu_alloc_fail_at(1);
    ck_assert_int_eq(fp__htab_init(&t, 2), FP_ENOMEM);
    tu_alloc_fail_at(0);
    ck_assert_int_eq(fp__htab_init(&t, 2), FP_OK);
    item it[10];
    tu_alloc_fail_at(1); /* the growth at the fifth insert */
    for (int i = 0; i < 10; i++) {
        it[i].payload = i;
        it[i].h.key = (uint64_t)i;
        fp__htab_insert(&t, &it[i].h);
    }
    ck_assert_uint_eq(t.count, 10);
    ck_assert_uint_gt(t.nbuckets, 4); /* a later growth succeeded */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(item_of(fp__htab_find(&t, (uint64_t)i))->payload, i);
    fp__htab_fini(&t);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(bad_arguments)
{
    fp__htab t;
    ck_assert_int_eq(fp__htab_init(NULL, 4), FP_EINVAL);
    ck_assert_int_eq(fp__htab_init(&t, 0), FP_EINVAL);
    ck_assert_int_eq(fp__htab_init(&t, 33), FP_EINVAL);
    fp__htab_fini(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("htab");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, find_insert_remove);
    tcase_add_test(tc, remove_is_exact_with_equal_keys);
    tcase_add_test(tc, grows_and_spreads_sequential_keys);
    tcase_add_test(tc, failed_allocations);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
