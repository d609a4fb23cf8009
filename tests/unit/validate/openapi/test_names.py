from seamline.validate.openapi.names import MAX_NAME, handoff_name, route_template, same_route, slug


def test_operation_ids_with_spaces_hyphens_and_dots_are_slugged():
    taken: set[str] = set()
    assert handoff_name("pets", "find pet by id", "GET", "/pets/{id}", taken) == "pets.find_pet_by_id"
    assert handoff_name("uspto", "list-data-sets", "GET", "/", taken) == "uspto.list_data_sets"
    assert handoff_name("x", " a..b / c-- ", "GET", "/a", taken) == "x.a_b_c"
    assert slug("GetCustomersCustomer") == "GetCustomersCustomer"


def test_without_an_operation_id_the_method_and_path_are_slugged():
    assert handoff_name("pets", None, "GET", "/pets/{petId}", set()) == "pets.get_pets_petId"
    assert handoff_name("pets", "", "DELETE", "/pets/{id}", set()) == "pets.delete_pets_id"


def test_long_ids_are_cut_with_a_stable_hash_and_stay_apart():
    a = "x" * 70 + "Alpha"
    b = "x" * 70 + "Beta"
    na, nb = handoff_name("stripe", a, "GET", "/a", set()), handoff_name("stripe", b, "GET", "/b", set())
    assert na != nb
    assert len(na.split(".", 1)[1]) <= 60 and len(na) <= MAX_NAME
    assert na == handoff_name("stripe", a, "GET", "/a", set())  # stable


def test_a_taken_name_gets_a_suffix_from_method_and_path():
    taken = {"pets.list"}
    n = handoff_name("pets", "list", "GET", "/other", taken)
    assert n.startswith("pets.list_") and n != "pets.list" and n in taken
    assert handoff_name("pets", "list", "GET", "/other", {"pets.list"}) == n  # deterministic


def test_route_templates_make_parameter_names_identifiers():
    assert route_template("/v1/customers/{customer}") == ("/v1/customers/{customer}", {"customer": "customer"})
    t, names = route_template("/a/{customer-id}/b/{1st}")
    assert t == "/a/{customer_id}/b/{p_1st}" and names == {"customer_id": "customer-id", "p_1st": "1st"}
    assert same_route("/pets/{id}", "/pets/{petId}") and not same_route("/pets/{id}", "/pets/{id}/toys")
