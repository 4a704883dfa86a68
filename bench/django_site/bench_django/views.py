from django.shortcuts import render

ITEMS = [{'n': i, 'name': 'item %d' % i, 'price': i * 1.25} for i in range(50)]


def page(request):
    return render(request, 'page.html', {'items': ITEMS, 'title': 'ufork bench'})
