from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path('', views.page),
    path('admin/', admin.site.urls),
]
